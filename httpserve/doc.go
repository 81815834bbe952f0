// Package httpserve holds the mechanics of serving an HTTP API that are
// not the API itself, so that an API package keeps only its routes and
// its wire format:
//
//   - Bodies reads JSON request bodies with bounded memory: a body over
//     the limit is refused from its Content-Length before a byte of it is
//     read (or, without one, as soon as it passes the limit), large bodies
//     are read one at a time (a bounded wait, then ErrBusy), a body is
//     read into one buffer of its length and decoded straight into the
//     caller's value, and anything but white space after the JSON value is
//     refused (ErrTrailingData).
//   - Serve runs an http.Server on a listener until a context ends, then
//     shuts it down gracefully; Listen binds "::" or falls back to
//     0.0.0.0 on a machine without IPv6.
//
// The caller maps the typed errors to its own answers (status codes and
// body shapes are the API's, not this package's).
package httpserve
