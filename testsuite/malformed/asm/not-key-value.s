cfg 2 4 1
