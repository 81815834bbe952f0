package disk

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
)

// ConfigDriveError: Ironic's config drive cannot be used (IPA answers
// InvalidCommandParamsError); Details says why.
type ConfigDriveError struct{ Details string }

func (e *ConfigDriveError) Error() string { return e.Details }

// DecodeConfigDrive gunzips a config drive as Ironic sends it (it may
// also come plain) and checks its size: at most ConfigDriveSize, the
// partition IPA gives it. Errors are *ConfigDriveError.
func DecodeConfigDrive(data []byte) ([]byte, error) {
	iso := data
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, configDriveError("config drive is not valid gzip: %v", err)
		}
		if iso, err = io.ReadAll(io.LimitReader(zr, ConfigDriveSize+1)); err != nil {
			return nil, configDriveError("config drive is not valid gzip: %v", err)
		}
	}
	if len(iso) > ConfigDriveSize {
		return nil, configDriveError("config drive is larger than %d MiB", ConfigDriveSize>>20)
	}
	if len(iso) == 0 {
		return nil, configDriveError("config drive is empty")
	}
	return iso, nil
}

func configDriveError(format string, a ...any) *ConfigDriveError {
	return &ConfigDriveError{Details: fmt.Sprintf(format, a...)}
}
