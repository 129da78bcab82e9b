// mail: plain script, no build step (see the issue-23 contract)
