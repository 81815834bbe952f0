package agent

import (
	"errors"
	"fmt"
)

// Error is an agent error in IPA's serialized shape. Ironic reads `type`
// (a TypeError is an agent bug to it), shows `details` (else `message`)
// to the operator, and the HTTP layer turns `code` into the status.
type Error struct {
	Type    string `json:"type"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details string `json:"details"`
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Message
	}
	return e.Message + ": " + e.Details
}

// IPA's error classes, with the fixed messages Ironic has always seen.
func errNotFound(details string) *Error {
	return &Error{Type: "RequestedObjectNotFoundError", Code: 404, Message: "Not found", Details: details}
}

func errInvalidCommand(details string) *Error {
	return &Error{Type: "InvalidCommandError", Code: 400, Message: "Invalid command", Details: details}
}

// ErrInvalidParams is what a command returns for parameters it cannot use.
func ErrInvalidParams(format string, a ...any) *Error {
	return &Error{Type: "InvalidCommandParamsError", Code: 400, Message: "Invalid command parameters", Details: fmt.Sprintf(format, a...)}
}

func errBusy(running string) *Error {
	return &Error{Type: "AgentIsBusy", Code: 409, Message: "Agent is busy", Details: "executing command " + running}
}

func errExecution(details string) *Error {
	return &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: details}
}

func errVersionMismatch(agentVersion, nodeVersion any) *Error {
	return &Error{Type: "VersionMismatch", Code: 409,
		Message: "Hardware managers version mismatch, reload agent with correct version",
		Details: fmt.Sprintf("Current agent version: %v, node version: %v", jsonText(agentVersion), jsonText(nodeVersion))}
}

func errMethodNotFound(method string) *Error {
	return &Error{Type: "HardwareManagerMethodNotFound", Code: 500,
		Message: "No HardwareManager found to handle method", Details: "Could not find method: " + method}
}

// stepError wraps a foreign step failure the way IPA's clean/deploy/service
// extensions do, so Ironic's last_error reads the same.
func stepError(kind StepKind, err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	switch kind {
	case Clean:
		return &Error{Type: "CleaningError", Code: 500, Message: "Clean step failed", Details: err.Error()}
	case Deploy:
		return &Error{Type: "DeploymentError", Code: 500, Message: "Deploy step failed", Details: err.Error()}
	default:
		return &Error{Type: "ServicingError", Code: 500, Message: "Service step failed", Details: err.Error()}
	}
}

// asAgentError turns any error into the shape IPA reports.
func asAgentError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	return errExecution(err.Error())
}
