ldw sm=9 row=0 col=0 rows=1 cols=1 w=0x01 meta=0x00
