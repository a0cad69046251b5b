// Package inputerr is the one error type for outside input the suite
// refuses: an upload, an archive, a manifest, a form. Its message is
// written for the person who sent the input and is safe to return to them
// (a 400); the cause, when there is one, is for logs and errors.Is.
//
// Parsers in every product return it, so servers map refusals to
// responses the same way: errors.As(err, &*inputerr.Error) → 400, and
// errors.Is(err, inputerr.ErrTooLarge) → 413.
package inputerr

import (
	"errors"
	"fmt"
)

// Error is refused input.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause, so errors.Is(err, ErrTooLarge) works through it.
func (e *Error) Unwrap() error { return e.Err }

// ErrTooLarge is wrapped by an *Error for input over a size or count limit.
var ErrTooLarge = errors.New("too large")

// Errorf is an *Error with a formatted message.
func Errorf(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// TooLargef is an *Error wrapping ErrTooLarge.
func TooLargef(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...), Err: ErrTooLarge}
}
