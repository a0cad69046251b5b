package httpx

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is the one error type handlers return. Status is the HTTP status;
// Msg is safe to show to the client; Err is the private cause, logged but
// never rendered. Code is an application error code for JSON clients
// (Connect's API puts it in the "code" field); zero means none.
type Error struct {
	Status  int
	Code    int
	Msg     string
	Payload any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted public message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 whose message tells the client what to fix.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, format, args...)
}

// NotFound is a 404. Use it for "not allowed to know it exists" too.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, format, args...)
}

// Internal is a 500 that hides err from the client and logs it.
func Internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Msg: "internal server error", Err: err}
}

// asError turns any error a handler produced into an *Error, mapping the
// standard library's errors that have an obvious status.
func asError(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &Error{Status: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit), Err: err}
	}
	return Internal(err)
}
