#include "ice/check_list.hpp"
