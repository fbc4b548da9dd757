package node

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// TestClosersUnwind: the closers run in the reverse of the order pushed,
// every one even after a failure, which is logged with its part's name and
// returned; a second close runs none again.
func TestClosersUnwind(t *testing.T) {
	t.Parallel()
	var logged bytes.Buffer
	c := closers{log: slog.New(slog.NewTextHandler(&logged, nil))}
	var ran []string
	errQueue, errDB := errors.New("queue failed"), errors.New("db failed")
	c.push("database", func() error { ran = append(ran, "database"); return errDB })
	c.push("queue", func() error { ran = append(ran, "queue"); return errQueue })
	c.push("api", func() error { ran = append(ran, "api"); return nil })
	err := c.close()
	if want := []string{"api", "queue", "database"}; !slices.Equal(ran, want) {
		t.Fatalf("ran %v, want %v", ran, want)
	}
	if !errors.Is(err, errQueue) || !errors.Is(err, errDB) {
		t.Fatalf("close returned %v, want both failures", err)
	}
	for _, name := range []string{"closing queue", "closing database"} {
		if !strings.Contains(logged.String(), name) {
			t.Fatalf("the log does not name %q:\n%s", name, logged.String())
		}
	}
	if strings.Contains(logged.String(), "closing api") {
		t.Fatalf("a closer that succeeded was logged:\n%s", logged.String())
	}
	ran = nil
	if err := c.close(); err != nil || len(ran) != 0 {
		t.Fatalf("a second close ran %v and returned %v", ran, err)
	}
}
