"""Platform adapters: each turns one chat platform's events into neutral values and back."""
