// Package ironicapi speaks the conventions of OpenStack Ironic's REST API
// that every client of it needs, whatever it asks: microversions (parsed,
// compared and capped at what the server offers), the version and
// request-id headers, JSON bodies, and error answers, whose faultstring
// Ironic hides inside error_message as JSON in a JSON string. Which
// endpoints to call and with what bodies is the caller's business (the
// agent's lookup and heartbeat).
package ironicapi
