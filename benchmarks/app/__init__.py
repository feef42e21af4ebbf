"""The app's performance harnesses: each starts a real server (and Chromium) and prints a table."""
