//go:build !linux

package node

import "os"

func datasync(f *os.File) error { return f.Sync() }
