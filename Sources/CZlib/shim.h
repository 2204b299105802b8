// zlib (Debian's zlib1g-dev): gzip decompression of IDX files.
#include <zlib.h>
