//! Bad input: malformed, oversized and wrong-type bodies each get a 4xx Status; the server keeps serving.
