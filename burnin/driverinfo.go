package burnin

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// DriverInfo is a node's driver_info as Ironic sends it, where IPA's
// burn-in options live. Numbers arrive as JSON numbers or, set from the
// command line, as strings.
type DriverInfo map[string]any

// ParamError is a driver_info option the burn-in cannot use (IPA's
// InvalidCommandParamsError).
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

func paramError(format string, a ...any) *ParamError {
	return &ParamError{Msg: fmt.Sprintf(format, a...)}
}

// FailedError is a burn-in that ran and found a fault: a wrong answer, a
// disk that failed its pass, a broken or corrupted stream (IPA's
// CommandExecutionError). Details is what the operator reads.
type FailedError struct {
	Details string
	Err     error
}

func (e *FailedError) Error() string { return e.Details }

func (e *FailedError) Unwrap() error { return e.Err }

// Int reads a whole number >= 0, def when the key is absent.
func (d DriverInfo) Int(key string, def int) (int, error) {
	switch v := d[key].(type) {
	case nil:
		return def, nil
	case float64:
		if v >= 0 && v == float64(int(v)) {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, paramError("driver_info.%s=%v is not a whole number >= 0", key, d[key])
}

// Text reads a string (a number is taken in its decimal form), def when
// the key is absent.
func (d DriverInfo) Text(key, def string) (string, error) {
	switch v := d[key].(type) {
	case nil:
		return def, nil
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", paramError("driver_info.%s=%v is not a string", key, d[key])
}

// Bool reads a boolean or its string form, false when the key is absent.
func (d DriverInfo) Bool(key string) (bool, error) {
	switch v := d[key].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			return b, nil
		}
	}
	return false, paramError("driver_info.%s=%v is not a boolean", key, d[key])
}

// Object reads a JSON object, or its text when set as a string from the
// command line; nil when the key is absent or empty.
func (d DriverInfo) Object(key string) (map[string]any, error) {
	switch v := d[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if len(v) == 0 {
			return nil, nil
		}
		return v, nil
	case string:
		if v == "" {
			return nil, nil
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, paramError("driver_info.%s is not a JSON object: %v", key, err)
		}
		return m, nil
	}
	return nil, paramError("driver_info.%s=%v is not an object", key, d[key])
}
