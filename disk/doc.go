// Package disk works on block devices: the safety checks every writer
// runs first, metadata and secure erasure, and partition tables.
//
// It never chooses devices: callers pass the paths they got from the
// inventory (which honours goipa-devices), and every destructive call
// refuses a device that holds a mounted filesystem or active swap.
package disk
