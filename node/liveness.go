package node

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Submit must not acknowledge a hash this node cannot carry to a receipt:
// while index writes fail (the indexer retries them) or while an issuer's
// configured key is no longer valid on chain, the hash would only pile up.
// liveness holds those reasons, so that Submit refuses before anything is
// queued, NodeInfo lists them and health turns NOT_SERVING.
var (
	// errIndexFailing: index writes fail; Submit answers Unavailable.
	errIndexFailing = errors.New("index writes are failing")
	// errKeyNotValid: the issuer's configured key cannot sign on chain;
	// Submit answers FailedPrecondition, as only the operator can fix it.
	errKeyNotValid = errors.New("issuer key is not valid on chain")
)

type liveness struct {
	mu sync.Mutex
	// index is the last failed index write while the indexer retries it.
	index error
	// keys: issuer → why its configured key cannot sign (wraps
	// errKeyNotValid).
	keys map[string]error
	// halting is set once the node halts for an upgrade it cannot run
	// (upgrade.go, which refuses Submit and tells NodeInfo itself).
	halting bool
	// notify learns each change of whether the node takes submissions
	// (health); called under mu, so calls arrive in order.
	notify func(serving bool)
}

// watch sets the function told whether the node takes submissions, now
// and at each change.
func (l *liveness) watch(fn func(serving bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notify = fn
	fn(l.servingLocked())
}

func (l *liveness) servingLocked() bool {
	return l.index == nil && len(l.keys) == 0 && !l.halting
}

// setHalting marks the node as halting for an upgrade: health goes
// NOT_SERVING for good (the process exits once the halt is ready).
func (l *liveness) setHalting() { l.change(func() { l.halting = true }) }

// change applies fn to the state and tells notify when serving flips.
func (l *liveness) change(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.servingLocked()
	fn()
	if now := l.servingLocked(); now != was && l.notify != nil {
		l.notify(now)
	}
}

// setIndex records a failed index write (nil: writes succeed again).
func (l *liveness) setIndex(err error) {
	l.change(func() {
		if err != nil {
			err = fmt.Errorf("%w (retrying; see the node's log): %v", errIndexFailing, err)
		}
		l.index = err
	})
}

// setKey records why issuer's key cannot sign (nil: it can).
func (l *liveness) setKey(issuer string, err error) {
	l.change(func() {
		if err == nil {
			delete(l.keys, issuer)
			return
		}
		if l.keys == nil {
			l.keys = make(map[string]error)
		}
		l.keys[issuer] = err
	})
}

// keyProblem is why issuer's key cannot sign, nil when it can.
func (l *liveness) keyProblem(issuer string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys[issuer]
}

// refuse is why a Submit for issuer must be refused now, nil when it may
// be queued.
func (l *liveness) refuse(issuer string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.index != nil {
		return l.index
	}
	return l.keys[issuer]
}

// problems lists every reason, index first, then by issuer.
func (l *liveness) problems() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	if l.index != nil {
		out = append(out, l.index.Error())
	}
	issuers := make([]string, 0, len(l.keys))
	for is := range l.keys {
		issuers = append(issuers, is)
	}
	sort.Strings(issuers)
	for _, is := range issuers {
		out = append(out, l.keys[is].Error())
	}
	return out
}
