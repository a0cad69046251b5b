package bundle

import "github.com/atrium-suite/atrium/shared/inputerr"

// InvalidError says a bundle or manifest is unacceptable; Msg is written for
// the publisher and safe to return in a 400 response.
type InvalidError = inputerr.Error

// ErrTooLarge is wrapped by the *InvalidError returned when a bundle is over
// one of its Limits; servers answer it with 413 rather than 400.
var ErrTooLarge = inputerr.ErrTooLarge

var (
	invalidf  = inputerr.Errorf
	tooLargef = inputerr.TooLargef
)
