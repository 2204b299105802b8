// libpng (Debian's libpng-dev): reading image folders, writing sample grids and plots.
#include <png.h>
