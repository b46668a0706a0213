//! Channels, routing, rate limits and delivery for kube-herald notifications.
