ldw sm=0 row=65535 col=65535 rows=1 cols=1 w=0x01 meta=0x00
