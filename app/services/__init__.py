"""Business rules: each service owns its transactions and raises only domain exceptions."""
