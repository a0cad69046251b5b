greet <- function() toupper(hello("greeter"))
