//! paf: an HTTP/HTTPS appliance and library on its own userspace TCP/IP stack.
