//! The mio loop of the Overwatch gossip listener.
