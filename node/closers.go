package node

import (
	"errors"
	"log/slog"
	"sync"
)

// closers is how the node comes apart: Start pushes each part's closer as
// soon as the part holds something (a file, a port, a goroutine), so Stop
// and a start that fails halfway unwind the same stack, in the reverse of
// the order the parts were made.
type closers struct {
	log   *slog.Logger
	mu    sync.Mutex
	stack []closer
}

type closer struct {
	name  string
	close func() error
}

func (c *closers) push(name string, close func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stack = append(c.stack, closer{name, close})
}

// close runs every closer pushed, the last first, and empties the stack;
// it logs each failure with its part's name and returns them joined.
func (c *closers) close() error {
	c.mu.Lock()
	stack := c.stack
	c.stack = nil
	c.mu.Unlock()
	var errs []error
	for i := len(stack) - 1; i >= 0; i-- {
		if err := stack[i].close(); err != nil {
			c.log.Error("closing "+stack[i].name, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
