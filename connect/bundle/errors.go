package bundle

import (
	"errors"
	"fmt"
)

// InvalidError says a bundle or manifest is unacceptable. Msg is written for
// the publisher and safe to return in a 400 response; Err, when set, is the
// underlying cause for logs and errors.Is.
type InvalidError struct {
	Msg string
	Err error
}

func (e *InvalidError) Error() string { return e.Msg }

// Unwrap returns the cause, so errors.Is(err, ErrTooLarge) works through it.
func (e *InvalidError) Unwrap() error { return e.Err }

// ErrTooLarge is wrapped by the *InvalidError returned when a bundle is over
// one of its Limits; servers answer it with 413 rather than 400.
var ErrTooLarge = errors.New("too large")

func invalidf(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

func tooLargef(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...), Err: ErrTooLarge}
}
