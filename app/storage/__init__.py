"""File storage: the FileStore interface, its local-filesystem implementation, and the data
manager that makes the store take part in the same two-phase commit as the database."""
