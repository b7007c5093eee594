//go:build race

package integration_test

// raceEnabled is whether the race detector is on: heavy tests run smaller.
const raceEnabled = true
