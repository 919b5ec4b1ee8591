ldx addr=0 data=0x1é1
