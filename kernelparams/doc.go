// Package kernelparams reads a program's settings from the Linux kernel
// command line, as a ramdisk agent gets them from its boot loader, with
// command-line flags of the same names winning over it.
//
// Split takes a command line apart as the kernel does (white space
// separates, double quotes group); Parse applies a table of Params, each
// with a default and a setter, to a settings struct. The value parsers
// (ParseBool, ParseSeconds, SplitList, CheckHTTPURL) read values the way
// OpenStack's ironic-python-agent reads its kernel parameters, so an
// operator's command line means the same thing to every program built on
// this package.
package kernelparams
