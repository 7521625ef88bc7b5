#include "ice/consent.hpp"
