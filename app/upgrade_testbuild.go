//go:build upgradetest

package app

// The upgradetest build knows app version 3, a test release that the e2e
// upgrade test switches to: it exists only in this build, so a release
// binary never runs a fake migration.
func init() { handlers[3] = testV3Handler }

// SetVersion3ForTest turns version 3's handler off (the release before the
// upgrade) or on (the release after), so a test runs both in one process.
// Only between a node's stop and its next start: handlers is not guarded.
func SetVersion3ForTest(on bool) {
	if on {
		handlers[3] = testV3Handler
	} else {
		delete(handlers, 3)
	}
}
