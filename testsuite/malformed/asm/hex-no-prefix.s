ldx addr=0 data=1234
