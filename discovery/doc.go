// Package discovery finds a network service by multicast DNS (RFC 6762,
// with DNS-SD names as RFC 6763 gives them): ask the link who offers a
// service type, keep the instance wanted, and return its host, port,
// addresses and TXT record. FindEndpoint asks until an answer comes and
// turns it into a URL as OpenStack's mdns.get_endpoint does; what the
// service is and what its other TXT records mean is the caller's.
package discovery
