package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	dbm "github.com/cometbft/cometbft-db"
)

// ErrStoreDamaged is wrapped by the error of one of CometBFT's databases
// that failed a read (a block that fails its checksum, a table cut short).
// CometBFT panics on any error of its stores; NewNode and DBs.Damage turn
// those panics back into this error, naming the store.
var ErrStoreDamaged = errors.New("CometBFT store damaged")

// storeError is an error of one of CometBFT's databases, naming it.
type storeError struct {
	dir string
	err error
}

func (e *storeError) Error() string { return fmt.Sprintf("CometBFT store %s: %v", e.dir, e.err) }
func (e *storeError) Unwrap() error { return e.err }

// namedDB names its directory in every error it returns, so that the panic
// CometBFT raises on it says which store failed.
type namedDB struct {
	dbm.DB
	dir string
}

func (d namedDB) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &storeError{dir: d.dir, err: err}
}

func (d namedDB) Get(key []byte) ([]byte, error) {
	v, err := d.DB.Get(key)
	return v, d.wrap(err)
}

func (d namedDB) Has(key []byte) (bool, error) {
	ok, err := d.DB.Has(key)
	return ok, d.wrap(err)
}

func (d namedDB) Iterator(start, end []byte) (dbm.Iterator, error) {
	it, err := d.DB.Iterator(start, end)
	if err != nil {
		return nil, d.wrap(err)
	}
	return namedIterator{Iterator: it, db: d}, nil
}

func (d namedDB) ReverseIterator(start, end []byte) (dbm.Iterator, error) {
	it, err := d.DB.ReverseIterator(start, end)
	if err != nil {
		return nil, d.wrap(err)
	}
	return namedIterator{Iterator: it, db: d}, nil
}

func (d namedDB) Set(key, value []byte) error     { return d.wrap(d.DB.Set(key, value)) }
func (d namedDB) SetSync(key, value []byte) error { return d.wrap(d.DB.SetSync(key, value)) }
func (d namedDB) Delete(key []byte) error         { return d.wrap(d.DB.Delete(key)) }
func (d namedDB) DeleteSync(key []byte) error     { return d.wrap(d.DB.DeleteSync(key)) }

type namedIterator struct {
	dbm.Iterator
	db namedDB
}

func (it namedIterator) Error() error { return it.db.wrap(it.Iterator.Error()) }

// damage is the error of panic value r when it carries the failure of one
// of the stores in dirs (as an error, or in the text CometBFT made of it),
// naming that store; nil for any other panic.
func damage(r any, dirs []string) error {
	if err, ok := r.(error); ok {
		var se *storeError
		if errors.As(err, &se) {
			return fmt.Errorf("%w: %v", ErrStoreDamaged, err)
		}
	}
	text := fmt.Sprint(r)
	for _, dir := range dirs {
		if strings.Contains(text, dir) {
			return fmt.Errorf("%w: %s", ErrStoreDamaged, text)
		}
	}
	return nil
}

// Damage is the error of a panic CometBFT raised on a failed read of one
// of the databases in d, naming it; nil for any other panic, which the
// caller should let go on.
func (d *DBs) Damage(r any) error {
	if d == nil {
		return nil
	}
	return damage(r, d.dirs())
}

func (d *DBs) dirs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	dirs := make([]string, 0, len(d.open))
	for _, db := range d.open {
		if n, ok := db.(namedDB); ok {
			dirs = append(dirs, n.dir)
		}
	}
	return dirs
}

// loadGuard turns a panic of CometBFT's assembly (which opens its stores,
// loads the state and the last block from them and replays the blocks the
// app lacks) into an error. One that names a store is that store's
// damage. Any other is reported as stores that do not agree, naming them
// all: CometBFT panics there on what its stores returned (a state ahead
// of its block store, a block that does not match its header), and a node
// must refuse such stores, not crash. Its stack is logged at debug level.
func (d *DBs) loadGuard(r any, log *slog.Logger) error {
	if err := d.Damage(r); err != nil {
		return err
	}
	log.Debug("CometBFT panicked loading its stores", "err", fmt.Sprint(r), "stack", string(debug.Stack()))
	return fmt.Errorf("%w: CometBFT's stores (%s) do not agree: %v", ErrStoreDamaged, strings.Join(d.dirs(), ", "), r)
}
