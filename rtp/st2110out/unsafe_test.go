package st2110out

import "unsafe"

// unsafePointer points at a control message's payload (a struct timespec the kernel wrote).
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
