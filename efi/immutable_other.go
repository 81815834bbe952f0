//go:build !linux

package efi

func clearImmutable(string) error { return nil }
