package pypi

import "github.com/atrium-suite/atrium/shared/inputerr"

// InvalidError says an upload, archive or request is unacceptable; Msg is
// written for the person who sent it and safe to return in a 400 response.
type InvalidError = inputerr.Error

// ErrTooLarge is wrapped by the *InvalidError returned when an upload or
// archive is over a size or count limit; servers answer it with 413.
var ErrTooLarge = inputerr.ErrTooLarge

var (
	invalidf  = inputerr.Errorf
	tooLargef = inputerr.TooLargef
)
