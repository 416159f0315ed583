"""check-failover: several memcached nodes, one fails and comes back; what each client configuration does."""
