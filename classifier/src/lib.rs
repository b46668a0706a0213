//! Pure rules over kube-herald records producing incidents (injected clock, no I/O).
