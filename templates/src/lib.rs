//! Default tera templates and rendering for kube-herald messages.
