package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFileSynced(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "f")
	for _, data := range []string{"first", "second, longer"} {
		if err := WriteFileSynced(Default, name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(Default, name)
		if err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	if _, err := os.Stat(name + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
}

// TestFaultyShortWrite: a ShortWrite writes its prefix and then fails, so
// the file holds exactly what a torn write leaves; other faults fail
// before anything happens, naming the file.
func TestFaultyShortWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fsys := NewFaulty(Default, nil)
	f, err := fsys.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fsys.SetFault(func(op Op, name string) error {
		if op == OpWrite {
			return &ShortWrite{N: 3, Err: syscall.ENOSPC}
		}
		return nil
	})
	if n, err := f.Write([]byte("abcdef")); n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write = %d, %v; want 3, ENOSPC", n, err)
	}
	fsys.SetFault(func(op Op, name string) error {
		if op == OpSync {
			return syscall.EIO
		}
		return nil
	})
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v, want EIO", err)
	}
	fsys.SetFault(nil)
	if _, err := f.Write([]byte("gh")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil || string(got) != "abcgh" {
		t.Fatalf("file holds %q, %v; want abcgh", got, err)
	}
	fsys.SetFault(func(op Op, name string) error {
		if op == OpRemove {
			return syscall.EACCES
		}
		return nil
	})
	err = fsys.Remove(filepath.Join(dir, "log"))
	var pe *os.PathError
	if !errors.Is(err, syscall.EACCES) || !errors.As(err, &pe) || pe.Path != filepath.Join(dir, "log") {
		t.Fatalf("remove: %v, want EACCES naming the file", err)
	}
}
