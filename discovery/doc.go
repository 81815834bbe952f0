// Package discovery finds a network service by multicast DNS (RFC 6762,
// with DNS-SD names as RFC 6763 gives them): ask the link who offers a
// service type, keep the instance wanted, and return its host, port,
// addresses and TXT record. It knows nothing of what the service is;
// callers turn the answer into URLs and settings.
package discovery
