frobnicate x=1
