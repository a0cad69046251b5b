#' Say hello.
hello <- function(name = "world") paste0("hello, ", name, " from 1.1.0")
