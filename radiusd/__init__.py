"""The RADIUS server: codec/ (the wire), auth/, view/, accounting/, and the process around them."""
