package raid

import (
	"fmt"
	"strconv"
	"strings"
)

// ArgError is a step argument raid cannot use (IPA's
// InvalidCommandParamsError).
type ArgError struct{ Msg string }

func (e *ArgError) Error() string { return e.Msg }

// ApplyArgs reads apply_configuration's arguments: raid_config (an
// object, required) and delete_existing (true unless set; Ironic may
// send a bool or its string form).
func ApplyArgs(args map[string]any) (cfg map[string]any, deleteExisting bool, err error) {
	cfg, ok := args["raid_config"].(map[string]any)
	if !ok {
		return nil, false, &ArgError{Msg: fmt.Sprintf("raid_config is required and must be an object, got %v", args["raid_config"])}
	}
	v, ok := args["delete_existing"]
	if !ok || v == nil {
		return cfg, true, nil
	}
	switch x := v.(type) {
	case bool:
		return cfg, x, nil
	case string:
		if b, err := strconv.ParseBool(strings.ToLower(x)); err == nil {
			return cfg, b, nil
		}
	}
	return nil, false, &ArgError{Msg: fmt.Sprintf("delete_existing must be a boolean, not %v", v)}
}
