package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/goipa/goipa/download"
	"github.com/goipa/goipa/injectfiles"
)

// The inject_files deploy step: IPA's parameters and error classes; the
// work is package injectfiles'.

// injectFilesClient fetches inject_files URLs: the agent's download
// client, without verification when the step's verify_ca is false.
func (a *Agent) injectFilesClient(args map[string]any) (*http.Client, error) {
	verify, ok := args["verify_ca"].(bool)
	return a.downloadClient(download.WithInsecure(ok && !verify))
}

// injectFiles is the inject_files deploy step.
func (d *deployer) injectFiles(ctx context.Context, sc *StepCall) (any, error) {
	props, _ := sc.Node["properties"].(map[string]any)
	files, err := injectfiles.Parse(props["inject_files"], sc.Args["files"])
	if err != nil {
		return nil, injectError(err)
	}
	if len(files) == 0 {
		sc.Log.Info("inject_files: no files to inject")
		return nil, nil
	}
	client, err := d.a.injectFilesClient(sc.Args)
	if err != nil {
		return nil, errExecution(err.Error())
	}
	device, err := d.installDisk(ctx, sc.Node)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		// Every partition a file goes to (a number, a /dev path or the
		// one found by its directory) passes the device check first.
		if err := injectfiles.Inject(ctx, device, f, sc.Node, sc.Ports, client, d.a.checkDevice); err != nil {
			if refused := (*Error)(nil); errors.As(err, &refused) {
				return nil, err // the device check's own answer
			}
			if ae := injectError(err); ae != err {
				return nil, ae
			}
			return nil, errExecution(fmt.Sprintf("Failed to process file %s: %v", f.Path, err))
		}
		sc.Log.Info("inject_files: done", "path", f.Path, "deleted", f.Deleted)
	}
	return nil, nil
}

// injectError maps package injectfiles' errors to IPA's classes; any
// other error comes back unchanged.
func injectError(err error) error {
	var ie *injectfiles.InvalidError
	var np *injectfiles.NoPartitionError
	switch {
	case errors.As(err, &ie):
		return ErrInvalidParams("%s", ie.Details)
	case errors.As(err, &np):
		return deviceNotFound(np.Error())
	}
	return err
}
