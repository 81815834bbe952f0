//go:build race

package agent

// raceDetector: allocation figures under the race detector include its
// own shadow bookkeeping, so tests measuring allocations assert them only
// in the plain run.
const raceDetector = true
