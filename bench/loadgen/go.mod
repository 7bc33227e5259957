module meshgate.invalid/loadgen

go 1.22
