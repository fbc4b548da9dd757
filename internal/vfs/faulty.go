package vfs

import (
	"errors"
	"io/fs"
	"os"
	"sync"
)

// Op names a file operation a Faulty file system may fail.
type Op int

const (
	OpOpen Op = iota
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpClose
	OpRemove
	OpRename
	OpMkdir
	OpReadDir
	OpStat
	OpSyncDir
)

var opNames = [...]string{"open", "read", "write", "sync", "truncate", "close", "remove", "rename", "mkdir", "readdir", "stat", "syncdir"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "op?"
}

// ShortWrite, returned by a Faulty's fault for a write, writes the first N
// bytes before the write fails with Err: a torn write, a disk that filled
// part way.
type ShortWrite struct {
	N   int
	Err error
}

func (e *ShortWrite) Error() string { return "short write: " + e.Err.Error() }
func (e *ShortWrite) Unwrap() error { return e.Err }

// Faulty is a file system that asks Fault before each operation (reads
// and writes at an offset count as OpRead and OpWrite) and fails it with
// the error Fault returns; nil lets it through to FS. Fault may be
// changed while files are open: SetFault.
type Faulty struct {
	FS FS

	mu    sync.Mutex
	fault func(op Op, name string) error
}

// NewFaulty wraps fsys; with a nil fault nothing fails.
func NewFaulty(fsys FS, fault func(op Op, name string) error) *Faulty {
	return &Faulty{FS: fsys, fault: fault}
}

// SetFault replaces the fault function; nil lets everything through.
func (f *Faulty) SetFault(fault func(op Op, name string) error) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *Faulty) check(op Op, name string) error {
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	if fault == nil {
		return nil
	}
	if err := fault(op, name); err != nil {
		var sw *ShortWrite
		if op != OpWrite && errors.As(err, &sw) {
			return sw.Err
		}
		if sw == nil {
			return &os.PathError{Op: op.String(), Path: name, Err: err}
		}
		return err
	}
	return nil
}

func (f *Faulty) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: file, fs: f}, nil
}

func (f *Faulty) Remove(name string) error {
	if err := f.check(OpRemove, name); err != nil {
		return err
	}
	return f.FS.Remove(name)
}

func (f *Faulty) Rename(oldname, newname string) error {
	if err := f.check(OpRename, oldname); err != nil {
		return err
	}
	return f.FS.Rename(oldname, newname)
}

func (f *Faulty) MkdirAll(dir string, perm os.FileMode) error {
	if err := f.check(OpMkdir, dir); err != nil {
		return err
	}
	return f.FS.MkdirAll(dir, perm)
}

func (f *Faulty) ReadDir(dir string) ([]fs.DirEntry, error) {
	if err := f.check(OpReadDir, dir); err != nil {
		return nil, err
	}
	return f.FS.ReadDir(dir)
}

func (f *Faulty) Stat(name string) (fs.FileInfo, error) {
	if err := f.check(OpStat, name); err != nil {
		return nil, err
	}
	return f.FS.Stat(name)
}

func (f *Faulty) SyncDir(dir string) error {
	if err := f.check(OpSyncDir, dir); err != nil {
		return err
	}
	return f.FS.SyncDir(dir)
}

type faultyFile struct {
	File
	fs *Faulty
}

// write applies a ShortWrite: its first N bytes go through w.
func (f *faultyFile) write(b []byte, w func([]byte) (int, error)) (int, error) {
	err := f.fs.check(OpWrite, f.Name())
	if err == nil {
		return w(b)
	}
	var sw *ShortWrite
	if !errors.As(err, &sw) {
		return 0, err
	}
	n := min(max(sw.N, 0), len(b))
	written, werr := w(b[:n])
	if werr != nil {
		return written, werr
	}
	return written, &os.PathError{Op: "write", Path: f.Name(), Err: sw.Err}
}

func (f *faultyFile) Write(b []byte) (int, error) { return f.write(b, f.File.Write) }

func (f *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	return f.write(b, func(p []byte) (int, error) { return f.File.WriteAt(p, off) })
}

func (f *faultyFile) Read(b []byte) (int, error) {
	if err := f.fs.check(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.Read(b)
}

func (f *faultyFile) ReadAt(b []byte, off int64) (int, error) {
	if err := f.fs.check(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.ReadAt(b, off)
}

func (f *faultyFile) Sync() error {
	if err := f.fs.check(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultyFile) Truncate(size int64) error {
	if err := f.fs.check(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *faultyFile) Close() error {
	if err := f.fs.check(OpClose, f.Name()); err != nil {
		f.File.Close()
		return err
	}
	return f.File.Close()
}
