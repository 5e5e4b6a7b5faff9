"""The in-memory subscriber view the hot path reads, the queries that fill it and the follower that keeps it current."""
