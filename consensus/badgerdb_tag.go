//go:build !badgerdb

package consensus

// CometBFT's badger backend (db_backend = "badgerdb") is compiled in only
// with the badgerdb build tag, so every build and test command carries
// -tags badgerdb (the Makefile's do). Without it, this line stops the build
// with an error that says so, before the less helpful ones about cometbft-db.
var _ = build_needs_tags_badgerdb_as_in_the_Makefile
