package disk

import (
	"context"
	"sync"
	"time"
)

// IPA erases and burns in every disk of a node at once; these run one
// goroutine per device and collect what each did.

// WipeMetadataEach wipes every device's metadata at once (IPA's
// erase_devices_metadata), each first checked by
// CheckSpecialFilesystems when guardSpecial is set. done is called
// (serialized) for each device wiped; the result holds each device that
// failed and why, nil when none did.
func WipeMetadataEach(ctx context.Context, devs []string, guardSpecial bool, done func(dev string)) DeviceErrors {
	var mu sync.Mutex
	var failures DeviceErrors
	var wg sync.WaitGroup
	for _, dev := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				if guardSpecial {
					if err := CheckSpecialFilesystems(dev); err != nil {
						return err
					}
				}
				return WipeMetadata(ctx, dev)
			}()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if failures == nil {
					failures = DeviceErrors{}
				}
				failures[dev] = err
				return
			}
			if done != nil {
				done(dev)
			}
		}()
	}
	wg.Wait()
	return failures
}

// BurnInEach runs BurnIn on every device at once. progress, when not
// nil, is called serialized with one device's bytes done of its total.
// The results and errors are in the order of devs.
func BurnInEach(ctx context.Context, devs []string, loops int, runtime time.Duration, progress func(dev string, done, total int64)) ([]BurnInResult, []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	results := make([]BurnInResult, len(devs))
	errs := make([]error, len(devs))
	for i, dev := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = BurnIn(ctx, dev, loops, runtime, func(done, total int64) {
				if progress == nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				progress(dev, done, total)
			})
		}()
	}
	wg.Wait()
	return results, errs
}
