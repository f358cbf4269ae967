//! The mio loop of the agent gossip client.
